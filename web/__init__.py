"""Web: the aiohttp application (pages, JSON API, authentication) and the
`dispatch` command line. The top layer: it may import every other package,
and no other package imports it.
"""
