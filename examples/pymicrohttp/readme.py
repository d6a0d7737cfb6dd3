"""The other examples of PyMicroHTTP's README (https://github.com/hasssanezzz/PyMicroHTTP),
as one program run on hump_listener: routing, path and query parameters, the request
object, the three kinds of returns, per-route middleware (one, and a chain), beforeAll
and start_server. The import line names ``hump_listener.compat.pymicrohttp``; where a
README snippet leaves out what a handler does (``...``, ``# do somthing``, ``# do your
auth logic here``), the line marked ``# filled in`` does something a test can see; and
the README's "Response Handling" fragments (bare ``return`` lines) get a route each.

    $ python readme.py        # then curl http://localhost:8080/ping

tests/test_examples.py runs this file over a real socket.
"""

import datetime
import json

from hump_listener.compat.pymicrohttp import Server

s = Server()


@s.beforeAll()
def logger(next):
    def handler(request):
        verb, path = request['verb'], request['path']
        print(f'{datetime.datetime.now()} {verb} {path}')
        return next(request)
    return handler


@s.register('* /ping')
def ping_handler(request):
    # accessing request headers
    if 'double' in request['headers']:
        return "pong-pong"
    return "pong"


@s.register('POST /login')
def login_handler(request):
    try:
        body = json.loads(request['body'])
        if 'username' not in body or 'password' not in body:
            return { 'error': 'missing username or password' }, 400  # filled in
    except:
        return { 'error': 'invalid data' }
    return { 'user': body['username'] }  # filled in


@s.register('GET /users/:group/:channel')
def handler(request):
    group = request['params']['group']
    channel = request['params']['channel']
    return {"group": group, "channel": channel}  # filled in


@s.register('GET /products')
def products(request):
    name = request['query'].get('name', '')
    category = request['query'].get('category', 'shoes')
    return {"name": name, "category": category}  # filled in


@s.register('GET /hello/:name/:n')
def hello(request):
    name, n = request['params']['name'], request['params']['n']
    return "Hello " * int(n) + name


@s.register('GET /json')
def as_json(request):
    return {"key": "value"}


@s.register('GET /missing')
def missing(request):
    return "Not Found", 404


@s.register('POST /resource')
def created(request):
    return "Created", 201, {"Location": "/resource/1"}


def log_middleware(next):
    def handler(request):
        print(f"Request: {request['verb']} {request['path']}")
        return next(request)
    return handler


def auth_middleware(next):
    def handler(request):
        if request['headers'].get('authorization') != 'Bearer secret':  # filled in
            return {"error": "unauthorized"}, 401
        return next(request)
    return handler


@s.register('GET /logged', log_middleware)
def logged_route(request):
    return {"message": "This is a logged route"}


@s.register('GET /protected', [log_middleware, auth_middleware])
def protected_route(request):
    return {"message": "This is a protected route"}


if __name__ == "__main__":
    s.start_server(port=8080)
