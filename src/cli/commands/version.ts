// `twill version`.
import type { Command } from "commander";
import type { CommandContext } from "../context.js";

export function registerVersion(program: Command, ctx: CommandContext): void {
  program
    .command("version")
    .description("Print twill's version and the Node.js it runs on")
    .addHelpText("after", "\nExample:\n  twill version")
    .action(async () => {
      const v = await ctx.versions();
      ctx.output.out(`twill version ${v.twill}\nnode version ${v.node}\n`);
    });
}
