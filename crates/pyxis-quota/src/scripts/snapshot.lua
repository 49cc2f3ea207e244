-- A consistent read of one tenant's usage; writes nothing (expired leases are skipped, not reaped).
-- KEYS: 1 rpm, 2 tpm, 3 live, 4 day, 5 month.  ARGV: 1 now_ms.
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('HGETALL', KEYS[2]),
  redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[1], '+inf'),
  redis.call('HMGET', KEYS[4], 'tokens', 'cost'),
  redis.call('HMGET', KEYS[5], 'tokens', 'cost'),
}
