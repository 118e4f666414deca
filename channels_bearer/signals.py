"""Signal receivers that close sockets when their token or user is revoked."""
