"""The web map: layers, legend, escaping and filters (HTML level; browser tests are separate)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import AUTH, point_feature

XSS = "<script>alert(1)</script>"


def test_map_shows_all_layers_and_a_legend(client: TestClient) -> None:
    response = client.get("/map")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.count('"type": "Feature"') >= 34 or page.count('"type":"Feature"') >= 34
    assert "Salang Tunnel" in page and "Second Salang Tunnel (proposed)" in page
    assert "dashArray" in page  # the proposed tunnel is dashed
    assert "Salang highway reconstruction" in page
    assert 'id="geo-legend"' in page and "under construction" in page
    assert "L.control.layers" in page


def test_user_text_is_escaped(client: TestClient) -> None:
    evil = point_feature(name=XSS, description=XSS, funders=[XSS], source_note="`${alert(2)}`")
    assert client.post("/collections/projects/items", json=evil, headers=AUTH).status_code == 201
    page = client.get("/map").text
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "${alert(2)}" not in page


def test_template_literal_breakers_are_neutralised(client: TestClient) -> None:
    body = point_feature(name="`+alert(3)+` ${alert(4)} \\u0060")
    assert client.post("/collections/projects/items", json=body, headers=AUTH).status_code == 201
    page = client.get("/map").text
    assert "`+alert(3)+`" not in page and "${alert(4)}" not in page


def test_query_parameters_filter_the_map(client: TestClient) -> None:
    client.post("/collections/projects/items", headers=AUTH,
                json=point_feature(name="Kandahar hospital", lon=65.71, lat=31.61, category="health",
                                   status="approved"))
    page = client.get("/map", params={"category": "health"}).text
    assert "Kandahar hospital" in page and "Salang highway reconstruction" not in page
    page = client.get("/map", params={"province": "AF-KAN", "status": "approved"}).text
    assert "Kandahar hospital" in page and "Second Salang Tunnel</h4>" not in page
    assert client.get("/map", params={"status": "nope"}).status_code == 400
