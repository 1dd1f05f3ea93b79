// Vite build for kprobe's console. Output: dist/index.html + dist/assets/<name>-<hash>.js|css,
// which kprobed serves with long-lived immutable caching (httpd/static.c). Everything is bundled:
// no CDN, no web fonts, nothing fetched from outside at run time.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    // `npm run dev` against a running kprobed: KPROBE_API=http://127.0.0.1:PORT npm run dev
    proxy: process.env.KPROBE_API
      ? { '/api': { target: process.env.KPROBE_API, ws: true } }
      : undefined,
  },
});
