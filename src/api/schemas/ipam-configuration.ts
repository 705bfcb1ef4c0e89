// IPAMConfiguration: cluster-wide IPAM settings. There is exactly one, named
// "default", as in Calico; an absent spec (or absent fields) gets Calico's
// defaults, which are what gets stored.
import { z } from "zod";
import { kindById } from "../kinds.js";
import { resourceSchema, singletonName } from "./common.js";
import type { KindSchema } from "./common.js";

/** The most blocks a host may hold when IPAMConfiguration does not say. */
export const DEFAULT_MAX_BLOCKS_PER_HOST = 20;

export const ipamConfigurationSpecSchema = z
  .strictObject({
    strictAffinity: z
      .boolean()
      .default(false)
      .describe(
        "When true, a host takes addresses only from its own blocks and never borrows from another host's.",
      ),
    maxBlocksPerHost: z
      .number()
      .int()
      .min(0)
      .max(2147483647)
      .default(DEFAULT_MAX_BLOCKS_PER_HOST)
      .describe("The most blocks one host may claim; 0 means no limit."),
    autoAllocateBlocks: z
      .boolean()
      .default(true)
      .describe("When true, a host claims a new block when its blocks are full."),
    kubeVirtVMAddressPersistence: z.enum(["Enabled", "Disabled"]).optional().meta({
      description:
        "Keeps KubeVirt VMs' addresses across restarts in Calico. Recognised; twill ignores it.",
      ignored: true,
    }),
  })
  .prefault({})
  .describe(
    'IPAM behaviour for the whole cluster. There is one IPAMConfiguration, named "default".',
  );

export type IPAMConfigurationSpec = z.output<typeof ipamConfigurationSpecSchema>;

export const ipamConfigurationSchema = resourceSchema(
  kindById("IPAMConfiguration"),
  ipamConfigurationSpecSchema,
  { name: singletonName("IPAMConfiguration") },
);

export type IPAMConfiguration = z.output<typeof ipamConfigurationSchema>;

export const ipamConfigurationKind: KindSchema = {
  schema: ipamConfigurationSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "IPAMConfiguration",
    metadata: { name: "default" },
    spec: { strictAffinity: true, maxBlocksPerHost: 8 },
  },
};
