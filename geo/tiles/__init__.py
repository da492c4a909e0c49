"""OGC API - Tiles: vector tiles (MVT) of every collection on the WebMercatorQuad grid."""
