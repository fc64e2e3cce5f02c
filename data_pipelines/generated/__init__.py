"""Download-free synthetic video generators."""
