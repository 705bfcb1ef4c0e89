import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { parseNetConf } from "./cni-config.js";
import { buildConflist, installCni, wrapperScript } from "./install.js";
import { PLUGIN_MAIN } from "./testing/netns-lab.js";

const exec = promisify(execFile);

describe("twill cni install", () => {
  it("writes both executables and a conflist whose plugin config twill parses", async () => {
    const dir = await mkdtemp(join(tmpdir(), "twill-cni-install-"));
    try {
      const result = await installCni({
        binDir: join(dir, "bin"),
        confDir: join(dir, "net.d"),
        etcdEndpoints: "http://10.0.0.1:2379",
        nodename: "node-1",
        mtu: 1450,
        node: process.execPath,
        plugin: PLUGIN_MAIN,
      });
      assert.deepEqual(result.files, [
        join(dir, "bin", "twill"),
        join(dir, "bin", "twill-ipam"),
        join(dir, "net.d", "10-twill.conflist"),
      ]);
      for (const file of result.files.slice(0, 2)) {
        assert.equal((await stat(file)).mode & 0o777, 0o755, file);
      }
      const conflist = JSON.parse(await readFile(result.files[2] as string, "utf8"));
      assert.equal(conflist.cniVersion, "1.0.0");
      assert.equal(conflist.name, "twill");
      const [plugin] = conflist.plugins;
      assert.equal(plugin.type, "twill");
      // The runtime hands the plugin its entry plus cniVersion and name.
      const conf = parseNetConf(
        JSON.stringify({ cniVersion: conflist.cniVersion, name: conflist.name, ...plugin }),
      );
      assert.equal(conf.datastore.endpoints, "http://10.0.0.1:2379");
      assert.equal(conf.nodename, "node-1");
      assert.equal(conf.mtu, 1450);
      assert.equal(conf.ipam.type, "twill-ipam");
      assert.deepEqual(conf.policy, { waitForProgrammed: true, timeoutSeconds: 10 });

      // The installed executables answer as a runtime calls them.
      for (const name of ["twill", "twill-ipam"]) {
        const child = execFile(join(dir, "bin", name), [], { env: { CNI_COMMAND: "VERSION" } });
        child.stdin?.end('{"cniVersion":"1.0.0"}');
        const out = await new Promise<string>((resolve, reject) => {
          let text = "";
          child.stdout?.on("data", (d: Buffer) => (text += d.toString()));
          child.on("close", (code) =>
            code === 0 ? resolve(text) : reject(new Error(`exit ${code}`)),
          );
        });
        assert.deepEqual(JSON.parse(out), {
          cniVersion: "1.0.0",
          supportedVersions: ["1.0.0", "1.1.0"],
        });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("quotes paths for the shell", async () => {
    const script = wrapperScript("/opt/my node/node", "/it's/main.js", true);
    const dir = await mkdtemp(join(tmpdir(), "twill-cni-quote-"));
    try {
      const { stdout } = await exec("sh", ["-n", "-c", script.replace(/^exec /m, "echo ")]);
      assert.equal(stdout, "");
      assert.match(script, /exec '\/opt\/my node\/node' '\/it'\\''s\/main\.js' --ipam "\$@"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a cniVersion the plugin does not speak", () => {
    assert.throws(() => buildConflist({ cniVersion: "0.3.1" }), /--cni-version/);
  });
});
