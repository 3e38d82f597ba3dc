import type { NextConfig } from "next";

const config: NextConfig = {
  // The example imports the client from this repository (tsconfig `paths`); an app installs
  // `@durable-export/client` from its registry or a `npm pack` tarball and needs neither line.
  experimental: { externalDir: true },
  transpilePackages: ["@durable-export/client"],
};

export default config;
