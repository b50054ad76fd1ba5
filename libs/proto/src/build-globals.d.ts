declare const WGCTL_VERSION: string | undefined;
declare const WGCTL_EMBEDDED_PROTOS: string | undefined;
