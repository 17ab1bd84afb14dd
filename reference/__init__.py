"""CMS reference tables: loaders for the official layouts, the release manifest and the bundled extracts."""
