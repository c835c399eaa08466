import { defineConfig } from "vite";

// Built assets go to ../dist, which the Go package embeds. The dev server
// proxies the APIs to a running glassmesh (GLASSMESH, default :20001).
const target = process.env.GLASSMESH ?? "http://127.0.0.1:20001";

export default defineConfig({
  base: "/",
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: { "/api": { target, changeOrigin: true } },
  },
});
