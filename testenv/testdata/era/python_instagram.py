"""Runs python-instagram 1.3.2 (the era's most used Python client of the v1 API) against the simulator.

Called by testenv's TestEraClientPythonInstagram as `python python_instagram.py SCENARIO`. The environment gives
IGSIM_ERA_HOST (host:port), IGSIM_ERA_PROTOCOL (http or https), IGSIM_ERA_TOKEN (the access token),
IGSIM_ERA_TAG, IGSIM_ERA_ARG (a scenario's argument) and, for https, HTTPLIB2_CA_CERTS (the simulator's CA).
It prints one JSON object: what the client returned, the paths it requested (never the query string, which
carries the token) and, when the client raised, the error's class and fields. The library is used as its README
shows; only its host and protocol are pointed at the simulator.
"""
import json
import os
import sys

import httplib2
from instagram.bind import InstagramAPIError, InstagramClientError
from instagram.client import InstagramAPI

requested = []
_request = httplib2.Http.request


def recording_request(self, uri, *args, **kwargs):
    requested.append(uri.split("?", 1)[0])
    return _request(self, uri, *args, **kwargs)


httplib2.Http.request = recording_request


def api():
    a = InstagramAPI(access_token=os.environ["IGSIM_ERA_TOKEN"])
    a.host = os.environ["IGSIM_ERA_HOST"]
    a.protocol = os.environ["IGSIM_ERA_PROTOCOL"]
    return a


def media_fields(m):
    return {
        "id": m.id,
        "type": m.type,
        "like_count": m.like_count,
        "comment_count": m.comment_count,
        "username": m.user.username,
        "created_time": m.created_time.isoformat(),
    }


def walk(a, tag):
    """Follows next_url to the end of the feed, as the library's docs show."""
    media, next_url = a.tag_recent_media(count=int(os.environ.get("IGSIM_ERA_ARG") or 33), tag_name=tag)
    pages, ids = 1, [m.id for m in media]
    while next_url:
        media, next_url = a.tag_recent_media(tag_name=tag, with_next_url=next_url)
        pages += 1
        ids.extend(m.id for m in media)
    return {"pages": pages, "ids": ids, "ratelimit": [a.x_ratelimit, a.x_ratelimit_remaining]}


def tag_info(a, tag):
    t = a.tag(tag)
    return {"name": t.name, "media_count": t.media_count}


def tag_search(a, q):
    tags, _ = a.tag_search(q=q)
    return {"tags": [{"name": t.name, "media_count": t.media_count} for t in tags]}


def popular(a, _):
    return {"media": [media_fields(m) for m in a.media_popular()]}


def media_by_id(a, media_id):
    return {"media": media_fields(a.media(media_id))}


SCENARIOS = {
    "walk": lambda a: walk(a, os.environ["IGSIM_ERA_TAG"]),
    "tag": lambda a: tag_info(a, os.environ["IGSIM_ERA_TAG"]),
    "search": lambda a: tag_search(a, os.environ["IGSIM_ERA_ARG"]),
    "popular": lambda a: popular(a, None),
    "media": lambda a: media_by_id(a, os.environ["IGSIM_ERA_ARG"]),
    # The same call twice: with a limit of one request per hour, the second is over it.
    "tag_twice": lambda a: (tag_info(a, os.environ["IGSIM_ERA_TAG"]), tag_info(a, os.environ["IGSIM_ERA_TAG"]))[1],
}


def main():
    out = {}
    try:
        out["result"] = SCENARIOS[sys.argv[1]](api())
    except InstagramAPIError as e:
        out["error"] = {"class": "InstagramAPIError", "status_code": str(e.status_code),
                        "error_type": e.error_type, "error_message": e.error_message}
    except InstagramClientError as e:
        out["error"] = {"class": "InstagramClientError", "status_code": str(e.status_code),
                        "error_message": e.error_message}
    out["requested"] = requested
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
