"""Headless output formats (ipftrace2-compatible). No bcc, no Textual."""
