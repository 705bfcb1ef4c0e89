// BGP passwords refer to secrets (`secretKeyRef: {name, key}`), as Calico's
// do to Kubernetes Secrets. twill reads them from a directory laid out as a
// Secret volume is mounted: `<dir>/<secret name>/<key>`, one file per key,
// the value being the file's text (one trailing newline dropped). Read when
// the agent starts; a missing directory means no secrets.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export type BgpSecrets = Record<string, Record<string, string>>;

export async function loadBgpSecrets(dir: string): Promise<BgpSecrets> {
  const secrets: BgpSecrets = {};
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return secrets;
    throw err;
  }
  for (const name of names.sort()) {
    if (name.startsWith(".")) continue; // a mounted volume's ..data links
    let keys: string[];
    try {
      keys = await readdir(join(dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOTDIR") continue;
      throw err;
    }
    const values: Record<string, string> = {};
    for (const key of keys.sort()) {
      if (key.startsWith(".")) continue;
      values[key] = (await readFile(join(dir, name, key), "utf8")).replace(/\r?\n$/, "");
    }
    secrets[name] = values;
  }
  return secrets;
}
