"""Rebuild `salang.geojson` from the sourced facts (../shared/data/FACTS.md).

Portal coordinates and the second tunnel's alignment are not published, so both tunnels are drawn
as north-south lines of the published length through the published centre, and marked approximate.
Run: `python layers/build_salang.py` (it rewrites layers/salang.geojson).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyproj import Geod

GEOD = Geod(ellps="WGS84")
# lon, lat; Wikipedia, "Salang tunnel" (35 deg 19 min 19.5 s N, 69 deg 1 min 37.0 s E)
CENTRE = (69.026944, 35.322083)

WIKIPEDIA = {"title": "Salang tunnel", "publisher": "Wikipedia",
             "url": "https://en.wikipedia.org/wiki/Salang_tunnel"}
CMIO = {"title": "Salang Tunnel", "publisher": "cmio.org", "date": "2022-12-18"}
ARIANA_2023 = {"title": "Salang Pass reconstruction project officially underway",
               "publisher": "Ariana News", "date": "2023-07-13",
               "url": "https://www.ariananews.af/salang-pass-reconstruction-project-officially-underway/"}
MENAFN_2023 = {"title": "Salang Highway Reopens After Reconstruction",
               "publisher": "Khaama Press via menafn.com", "date": "2023-12-20",
               "url": "https://menafn.com/1107632773/Salang-Highway-Reopens-After-Reconstruction"}
ARIANA_2025 = {"title": "Second tunnel planned for Salang highway to ease traffic congestion",
               "publisher": "Ariana News", "date": "2025-06-09",
               "url": ("https://www.ariananews.af/"
                       "second-tunnel-planned-for-salang-highway-to-ease-traffic-congestion/")}
TAAND = {"title": "Ministry of Public Works on a new Salang tunnel", "publisher": "taand.net",
         "date": "2017"}


def north_south_line(length_km: float) -> list[list[float]]:
    """A geodesic line of `length_km` running south to north through CENTRE."""
    half = length_km * 500.0
    lon, lat = CENTRE
    s_lon, s_lat, _ = GEOD.fwd(lon, lat, 180.0, half)
    n_lon, n_lat, _ = GEOD.fwd(lon, lat, 0.0, half)
    return [[round(s_lon, 6), round(s_lat, 6)], list(CENTRE), [round(n_lon, 6), round(n_lat, 6)]]


def features() -> list[dict[str, Any]]:
    """The Salang layer's features."""
    existing = {
        "type": "Feature",
        "id": "salang-tunnel",
        "geometry": {"type": "LineString", "coordinates": north_south_line(2.67)},
        "properties": {
            "name": "Salang Tunnel",
            "name_prs": "تونل سالنگ",
            "name_prs_latn": "Tūnel-e Sālang",
            "name_ps": "د سالنگ تونل",
            "kind": "tunnel",
            "status": "open",
            "provinces": "AF-PAR/AF-BGL",
            "length_km": 2.67,
            "altitude_m": "3,200-3,400 (sources differ)",
            "width_m": 6,
            "construction": "1958-1964, with Soviet expertise (agreement signed 1955)",
            "opened": "1964",
            "history": ("Highest road tunnel in the world until 1973. Entrances destroyed in the 1997-1998 "
                        "fighting; reopened on 19 January 2002. Salang highway reconstruction (80 km, nine "
                        "provinces to Kabul) inaugurated on 12 July 2023; the rebuilt tunnel and galleries "
                        "inaugurated on 20 December 2023."),
            "geometry_quality": "approximate",
            "geometry_note": ("Portal coordinates are not published in the sources: drawn as a 2.67 km "
                              "north-south line through the published centre 35.322083 N, 69.026944 E."),
            "sources": [WIKIPEDIA, CMIO, ARIANA_2023, MENAFN_2023],
        },
    }
    proposed = {
        "type": "Feature",
        "id": "salang-tunnel-2",
        "geometry": {"type": "LineString", "coordinates": north_south_line(12.0)},
        "properties": {
            "name": "Second Salang Tunnel (proposed)",
            "name_prs": "تونل دوم سالنگ",
            "kind": "tunnel",
            "status": "proposed",
            "provinces": "AF-PAR/AF-BGL",
            "length_km": 12.0,
            "history": ("2017: a design contract of about USD 20 million signed with an Australian company "
                        "for a tunnel of about 12 km from the Olang area (South Salang, Parwan) to the Doshakh "
                        "area (North Salang, Baghlan), to be financed by the Asian Development Bank; new "
                        "Salang tunnels estimated at USD 1.6 billion (taand.net). 20 December 2023: Abdul "
                        "Ghani Baradar said the authorities strive to start construction (menafn.com). "
                        "9 June 2025: the Ministry of Public Works announced plans; preliminary negotiations "
                        "have begun, and a contract with an international firm will follow if a budget is "
                        "secured (Ariana News)."),
            "estimated_cost_usd": 1_600_000_000,
            "geometry_quality": "approximate",
            "geometry_note": ("No alignment has been published: drawn as a 12 km north-south line along the "
                              "same corridor, passing below the existing tunnel's centre."),
            "sources": [TAAND, MENAFN_2023, ARIANA_2025],
        },
    }
    return [existing, proposed]


def main() -> None:
    """Write layers/salang.geojson."""
    layer = {"type": "FeatureCollection", "name": "salang", "features": features()}
    target = Path(__file__).with_name("salang.geojson")
    target.write_text(json.dumps(layer, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
