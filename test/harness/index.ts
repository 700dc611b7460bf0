export { freePort } from './ports.ts';
export { runChecked, runCommand, startProcess, waitFor, type CommandResult, type RunningProcess } from './process.ts';
export { startRegistry, type Registry } from './registry.ts';
export { buildImage, pushImage, skopeoCopy, skopeoInspectDigest, type BuiltImage } from './image.ts';
export { attestImage, generateKey, pushReferrer, putManifest, signImage, uploadBlob } from './cosign.ts';
export { startContainerd, type Containerd } from './containerd.ts';
export { makeCa, type TestCa } from './tls.ts';
