import { Site } from "./components/site";
import { loadSite } from "./components/loadSite";

// Validate everything first: a bad value stops the program before any resource is declared.
const { config, sshKeys, smbPasswords, convergeToken, kubeconfig } = loadSite();
const site = new Site("site", { config, sshKeys, smbPasswords, convergeToken, kubeconfig });

export const storageNode = site.storageNode;
export const storageRoot = config.storage.root;
export const modelStore = site.modelStore;
export const linkFolders = site.linkFolders;
export const categoryFolders = site.categoryFolders;
/** Each project's folder (modelshare:projects). */
export const projectFolders = site.projectFolders;
/** With an SMB share: `unc` (\\host\share), `url` (smb://host/share) and each user folder's path. */
export const smbShare = site.smbShare;
/** With NFS: `export` (host:/root), `mountCommand` (for another Linux machine), `mountPoints` (per worker). */
export const nfs = site.nfs;
/** With modelshare:models: `category/file` -> { path on the storage node, sha256 }. */
export const declaredModels = site.declaredModels;
/** With storage.intake: staging: { staging, rejected }, the intake's folders on the storage node. */
export const intake = site.intake;
/** With services: node -> service -> { container, url } (the URL of its first TCP port). */
export const services = site.services;
/** With services in a cluster (kubernetes): service -> its URL inside the cluster. */
export const clusterServices = site.clusterServices;
