-- The relay's own session (crates/outbox/src/store.rs, prepare_relay_session).
-- $1 tcp_keepalives_idle (s), $2 tcp_keepalives_interval (s), $3 tcp_keepalives_count,
-- $4 tcp_user_timeout (ms). On a Unix-socket session PostgreSQL ignores the TCP ones.
SELECT set_config('synchronous_commit', 'off', false),
       set_config('tcp_keepalives_idle', $1::text, false),
       set_config('tcp_keepalives_interval', $2::text, false),
       set_config('tcp_keepalives_count', $3::text, false),
       set_config('tcp_user_timeout', $4::text, false)
