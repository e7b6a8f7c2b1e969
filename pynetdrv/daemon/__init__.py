"""The daemon as a list of components started in order and stopped in
reverse (lifecycle), the components themselves (components), the HTTP side
(http: the app and its unix socket), and process plumbing (process).
``pynetdrv.server.serve`` puts them together."""
