// Where a node's BIRD keeps its files unless --bird-dir says otherwise. A
// file of its own so that the CLI can name the directory without loading
// the supervisor.

/** The parent of every node's default BIRD directory. */
export const DEFAULT_BIRD_ROOT = "/var/run/twill/bird";

/** `/var/run/twill/bird/<nodeName>`: one directory per node, so nodes on one machine never collide. */
export function defaultBirdDir(nodeName: string): string {
  return `${DEFAULT_BIRD_ROOT}/${nodeName}`;
}
