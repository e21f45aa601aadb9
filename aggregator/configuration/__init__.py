"""feeds.yaml: the first stage of the data flow.

Owns: reading and validating feeds.yaml into `core.models.Config` with one-line errors naming the line
(`load`, `yamlread`), editing it in place without losing comments (`feeds_file`), and subscription lists
in OPML (`opml`).

May import: core.
Never imports: fetching, parsing, store, publishing, serving, or any network or database library.
"""
