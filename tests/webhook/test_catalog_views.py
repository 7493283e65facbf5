"""The catalog's HTTP endpoints: public JSON, cacheable, with the app's JSON error shape."""

from __future__ import annotations

import pytest

import catalog


class TestRegistration:
    def test_factory_registers_the_blueprint(self, app):
        """create_app serves the catalog endpoints."""
        assert "catalog" in app.blueprints


class TestListEntries:
    def test_lists_every_entry(self, client):
        """GET /catalog returns every entry as a JSON list, cacheable for an hour."""
        response = client.get("/catalog")

        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=3600"
        assert len(response.json) == len(catalog.entries())
        assert {"api", "code", "retry", "explanation", "known"} <= set(response.json[0])

    def test_filters(self, client):
        """?api= and ?category= narrow the list; on-premises is accepted as a spelling."""
        response = client.get("/catalog?api=on-premises&category=flow")

        assert response.status_code == 200
        assert [e["code"] for e in response.json] == [2064, 2065, 2066, 2067, 2068, 2069, 2070]

    def test_unknown_api_filter(self, client):
        """An unknown ?api= is a 404 with the api-unknown error code."""
        response = client.get("/catalog?api=sms")

        assert response.status_code == 404
        assert response.json["error"] == "api-unknown"

    def test_unknown_category_filter(self, client):
        """An unknown ?category= is a 400 naming the valid categories."""
        response = client.get("/catalog?category=auth/certificate")

        assert response.status_code == 400
        assert response.json["error"] == "category-unknown"
        assert "rate_limit" in response.json["message"]


class TestShowEntry:
    def test_known_code(self, client):
        """GET /catalog/cloud/131049 returns the entry with both languages, cacheable."""
        response = client.get("/catalog/cloud/131049")

        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=3600"
        assert response.json["code"] == 131049
        assert response.json["retry"]["min_delay_seconds"] == 86400
        assert response.json["explanation"]["ja"] == catalog.lookup(131049).explanation.ja

    def test_api_spelling_with_hyphen(self, client):
        """The On-Premises api may be written with a hyphen in the address."""
        response = client.get("/catalog/on-premises/470")

        assert (response.json["api"], response.json["code"]) == ("on_premises", 470)

    def test_unknown_code_is_a_guess(self, client):
        """An unknown code still answers 200, with the best-guess entry marked known false."""
        response = client.get("/catalog/cloud/132999")

        assert response.status_code == 200
        assert response.json["known"] is False
        assert response.json["category"] == "template"

    def test_unknown_api(self, client):
        """An unknown api in the address is a 404 with the api-unknown JSON error."""
        response = client.get("/catalog/sms/131049")

        assert response.status_code == 404
        assert response.json["error"] == "api-unknown"
        assert response.json["message"]

    @pytest.mark.parametrize("code", ["abc", "-1", "13104９", "1.5"])
    def test_invalid_code(self, client, code):
        """A code that is not plain ASCII digits is a 404 with the code-invalid JSON error."""
        response = client.get(f"/catalog/cloud/{code}")

        assert response.status_code == 404
        assert response.json["error"] == "code-invalid"

    def test_no_authentication_needed(self, client):
        """The catalog is public: no signature or token is asked for."""
        assert client.get("/catalog/cloud/131026").status_code == 200
