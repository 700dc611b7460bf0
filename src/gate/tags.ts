// What to do with a pull by tag once the tag is pinned: a pure function of the pin, what the
// upstream tag points at now, and the rule's tag mode.
import type { TagMode } from '../policy/types.ts';

export type TagAction =
  /** Serve the pinned digest; `drift` is the digest the upstream tag moved to, if it moved. */
  | { action: 'serve-pinned'; drift?: string }
  /** Refuse the tag: it moved and the rule says deny. */
  | { action: 'deny-moved'; from: string; to: string }
  /** Judge the new digest; move the pin only if it is admitted, else serve the pinned one. */
  | { action: 'try-follow'; from: string; to: string };

/** `upstreamDigest` is undefined when the upstream could not say (unreachable, tag gone). */
export function tagAction(pinned: string, upstreamDigest: string | undefined, mode: TagMode): TagAction {
  if (upstreamDigest === undefined || upstreamDigest === pinned) return { action: 'serve-pinned' };
  switch (mode) {
    case 'pin':
      return { action: 'serve-pinned', drift: upstreamDigest };
    case 'deny':
      return { action: 'deny-moved', from: pinned, to: upstreamDigest };
    case 'follow':
      return { action: 'try-follow', from: pinned, to: upstreamDigest };
  }
}
