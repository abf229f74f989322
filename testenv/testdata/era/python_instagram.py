"""Runs python-instagram 1.3.2 (the era's most used Python client of the v1 API) against the simulator.

Called by testenv's TestEraClientPythonInstagram as `python python_instagram.py`, with a JSON list of calls on
standard input, each {"scenario": ..., "token": ..., "tag": ..., "arg": ...} (the access token, the tag, a
scenario's argument); one process runs them all, one after the other, each with a client of its own, since
starting Python and importing the library is most of the time. The environment gives IGSIM_ERA_HOST (host:port),
IGSIM_ERA_PROTOCOL (http or https) and, for https, HTTPLIB2_CA_CERTS (the simulator's CA). It prints a JSON list,
one object per call: what the client returned, the paths it requested (never the query string, which carries
the token) and, when the client raised, the error's class and fields. The library is used as its README shows;
only its host and protocol are pointed at the simulator.
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


def api(token):
    a = InstagramAPI(access_token=token)
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


def walk(a, tag, count):
    """Follows next_url to the end of the feed, as the library's docs show."""
    media, next_url = a.tag_recent_media(count=int(count or 33), tag_name=tag)
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
    "walk": lambda a, c: walk(a, c["tag"], c["arg"]),
    "tag": lambda a, c: tag_info(a, c["tag"]),
    "search": lambda a, c: tag_search(a, c["arg"]),
    "popular": lambda a, c: popular(a, None),
    "media": lambda a, c: media_by_id(a, c["arg"]),
    # The same call twice: with a limit of one request per hour, the second is over it.
    "tag_twice": lambda a, c: (tag_info(a, c["tag"]), tag_info(a, c["tag"]))[1],
}


def run(call):
    del requested[:]
    out = {}
    try:
        out["result"] = SCENARIOS[call["scenario"]](api(call["token"]), call)
    except InstagramAPIError as e:
        out["error"] = {"class": "InstagramAPIError", "status_code": str(e.status_code),
                        "error_type": e.error_type, "error_message": e.error_message}
    except InstagramClientError as e:
        out["error"] = {"class": "InstagramClientError", "status_code": str(e.status_code),
                        "error_message": e.error_message}
    out["requested"] = list(requested)
    return out


def main():
    json.dump([run(call) for call in json.load(sys.stdin)], sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
