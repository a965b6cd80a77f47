import type { ServiceName } from "./schema";

/**
 * Where each UI looks for each category: a folder relative to the UI's own models folder
 * (`paths.models` inside the container). Each shared category the site keeps is bind-mounted
 * there; a category a UI has no folder for is not mounted into it. The names were checked
 * against each project's own source; docs/ui-folders.md is generated from this file (npm run docs).
 *
 * ComfyUI's folders are the category names themselves (the store uses ComfyUI's names).
 * Ollama keeps one folder of its own (storage.ollamaModels), not categories.
 */
export const UI_FOLDERS: Readonly<Record<Exclude<ServiceName, "ollama">, Readonly<Record<string, string>>>> = {
  comfyui: {
    audio_encoders: "audio_encoders",
    checkpoints: "checkpoints",
    classifiers: "classifiers",
    clip: "clip",
    clip_vision: "clip_vision",
    configs: "configs",
    controlnet: "controlnet",
    diffusers: "diffusers",
    diffusion_models: "diffusion_models",
    embeddings: "embeddings",
    gligen: "gligen",
    hypernetworks: "hypernetworks",
    latent_upscale_models: "latent_upscale_models",
    loras: "loras",
    model_patches: "model_patches",
    photomaker: "photomaker",
    style_models: "style_models",
    t2i_adapter: "t2i_adapter",
    text_encoders: "text_encoders",
    unet: "unet",
    upscale_models: "upscale_models",
    vae: "vae",
    vae_approx: "vae_approx",
  },
  // stable-diffusion-webui-forge keeps A1111's layout: embeddings beside models/ (its
  // --embeddings-dir default), checkpoints and UNet-only models both in Stable-diffusion (which
  // Forge scans recursively: each gets a subfolder, as Stability Matrix does), TAESD in VAE-taesd.
  // No clip_vision folder: Forge downloads CLIP-Vision by name into ControlNetPreprocessor.
  forge: {
    checkpoints: "Stable-diffusion/sd",
    diffusion_models: "Stable-diffusion/unet",
    unet: "Stable-diffusion/unet",
    loras: "Lora",
    vae: "VAE",
    vae_approx: "VAE-taesd",
    embeddings: "../embeddings",
    hypernetworks: "hypernetworks",
    controlnet: "ControlNet",
    t2i_adapter: "ControlNet",
    upscale_models: "ESRGAN",
    clip: "text_encoder",
    text_encoders: "text_encoder",
  },
  // Fooocus's config.txt defaults (modules/config.py), which follow ComfyUI's names.
  fooocus: {
    checkpoints: "checkpoints",
    loras: "loras",
    embeddings: "embeddings",
    vae: "vae",
    vae_approx: "vae_approx",
    upscale_models: "upscale_models",
    controlnet: "controlnet",
    clip_vision: "clip_vision",
  },
};

/** The folder a UI finds `category` in, relative to its models folder; undefined: it has none. */
export function uiFolder(service: ServiceName, category: string): string | undefined {
  return service === "ollama" ? undefined : UI_FOLDERS[service][category];
}
