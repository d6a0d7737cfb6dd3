"""The APIs of the projects hump_listener descends from, as thin layers over ``App``.

- ``hump_listener.compat.hump``: Hump's ``Hump(host, port)``, ``@app.get(url)``,
  ``Request``, ``Response(data, status)``, ``statuses``, ``asyncio.run(app.serve())``.
- ``hump_listener.compat.pymicrohttp``: PyMicroHTTP's ``Server()``,
  ``@s.register("GET /hello/:name", middleware)``, one request dict, ``@s.beforeAll()``,
  ``s.start_server(port=8080)``.

Each wraps one real ``App`` (``.app``): the same server, router, protocol and limits, so
an old program keeps its code and gets the framework's behaviour. docs/coming-from.md
says what differs.
"""
