// ClusterInformation: facts about the cluster as a whole, written by twill
// itself (the GUID on first start, datastore readiness). One per cluster,
// named "default", as in Calico.
import { z } from "zod";
import { kindById } from "../kinds.js";
import { resourceSchema, singletonName } from "./common.js";
import type { KindSchema } from "./common.js";

export const clusterInformationSpecSchema = z
  .strictObject({
    clusterGUID: z
      .string()
      .optional()
      .describe(
        "A unique, random identifier for this cluster, set once when the datastore is first initialised.",
      ),
    clusterType: z
      .string()
      .optional()
      .describe('Comma-separated words describing the installation, e.g. "twill,bgp,etcd".'),
    calicoVersion: z
      .string()
      .optional()
      .describe("The version of the software that last initialised the datastore."),
    datastoreReady: z
      .boolean()
      .optional()
      .describe(
        "When false, agents wait before using the datastore (set during migrations); ready when omitted.",
      ),
    variant: z
      .string()
      .optional()
      .describe(
        'Which product variant is active; twill writes "twill". Recorded, not interpreted.',
      ),
  })
  .prefault({})
  .describe(
    'Facts about the cluster as a whole. There is one ClusterInformation, named "default".',
  );

export type ClusterInformationSpec = z.output<typeof clusterInformationSpecSchema>;

export const clusterInformationSchema = resourceSchema(
  kindById("ClusterInformation"),
  clusterInformationSpecSchema,
  { name: singletonName("ClusterInformation") },
);

export type ClusterInformation = z.output<typeof clusterInformationSchema>;

export const clusterInformationKind: KindSchema = {
  schema: clusterInformationSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "ClusterInformation",
    metadata: { name: "default" },
    spec: {
      clusterGUID: "4f1c2a9e8b7d4c3fa6e5d4c3b2a19087",
      clusterType: "twill,bgp,etcd",
      datastoreReady: true,
    },
  },
};
