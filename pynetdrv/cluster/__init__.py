"""Multi-host: what pynetdrv shares between hosts, on etcd.

`endpoints` (parsing `etcd://HOST:PORT[,...]` and the TLS options) and `errors` are pure and cheap
to import; `etcd` (the client wrapper) imports aetcd and grpc, so only cluster mode imports it."""
