// Rendering, batched to one pass per animation frame. It imports nothing: the views it draws
// (the sidebar, the messages, the composer) sit above it and are registered by app.js at
// start-up.
//
// Hook: setRenderers(...fns) — the renderers a pass calls, in that order.

let renderers = [];
export function setRenderers(...fns) {
  renderers = fns;
}

let renderQueued = false;
export function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

export function render() {
  for (const draw of renderers) draw();
}
