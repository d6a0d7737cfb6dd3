"""PyMicroHTTP's README "Quick Start" (https://github.com/hasssanezzz/PyMicroHTTP), run on
hump_listener: only the import line changed, from ``pymicrohttp.server`` to
``hump_listener.compat.pymicrohttp``.

    $ python quickstart.py    # then curl http://localhost:8080/hello/bob

tests/test_examples.py runs this file over a real socket.
"""

from hump_listener.compat.pymicrohttp import Server

s = Server()

@s.register('GET /hello')
def hello(request):
    return {"message": "Hello, World!"}

@s.register('GET /hello/:name')
def hello_name(request):
    name = request['params'].get('name')
    return {"message": f"Hello, {name}!"}


if __name__ == "__main__":
    s.start_server(port=8080)
