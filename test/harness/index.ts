export { cpuIdle, cpuMs } from './cpu.ts';
export { freePort } from './ports.ts';
export {
  runChecked,
  runCommand,
  startProcess,
  waitFor,
  type CommandResult,
  type RunCommandOptions,
  type RunningProcess,
  type StartProcessOptions,
  type WaitForOptions,
} from './process.ts';
export { startRegistry, type Registry, type RegistryAuth, type RegistryOptions } from './registry.ts';
export {
  buildImage,
  pushImage,
  skopeoCopy,
  skopeoInspectDigest,
  type BuildImageOptions,
  type BuiltImage,
  type Credentials,
  type SkopeoCopyOptions,
} from './image.ts';
export {
  attestImage,
  generateKey,
  pushReferrer,
  putManifest,
  signImage,
  uploadBlob,
  type KeyAlgorithm,
  type RegistryRef,
} from './cosign.ts';
export { startContainerd, type Containerd, type HostsConfig, type RawHosts } from './containerd.ts';
export { makeCa, type TestCa } from './tls.ts';
