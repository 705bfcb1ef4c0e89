// The envelope every stored resource shares. Kind-specific types (the `spec`s)
// are inferred from the schemas in schemas/.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** The datastore revision of the last write (etcd mod revision), as a string. */
  resourceVersion?: string;
  /** Set by the datastore on create. */
  uid?: string;
  /** RFC 3339, set by the datastore on create. */
  creationTimestamp?: string;
}

export interface Resource<Spec = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Spec;
}

/** One validation problem: the field's path (`spec.ingress[0].action`) and why. */
export interface FieldError {
  path: string;
  message: string;
}
