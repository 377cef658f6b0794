// The error line under the composer: what went wrong with a send, a stop, a branch or a
// refused frame, and the server errors of background loads.

import { state } from './state.js';
import { ApiError } from './api.js';
import { dom } from './dom.js';

export function showComposerError(message) {
  dom.composerError.textContent = message;
}

/** Background loads: network failures already show as "Reconnecting…"; server errors do not. */
export function reportBackgroundError(err) {
  if (err instanceof ApiError && state.token) showComposerError(err.message);
}
