-- Settlement, atomic: free the slot and the reservation, replace the reserved tokens by the actual ones in the
-- window bucket of admission, and charge tokens and cost to the current day and month.
-- KEYS: 1 tpm, 2 live, 3 reserved, 4 day, 5 month
-- ARGV: 1 member, 2 reserved tokens, 3 admission second, 4 oldest second in the window, 5 actual tokens,
--       6 cost (USD, decimal), 7 day TTL ms, 8 month TTL ms
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  -- Not a member: the lease expired and whoever reaped it already gave the reservation back.
  if redis.call('DECRBY', KEYS[3], ARGV[2]) < 0 then
    redis.call('SET', KEYS[3], '0', 'KEEPTTL')
  end
end

if ARGV[2] ~= ARGV[5] and tonumber(ARGV[3]) >= tonumber(ARGV[4]) and redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  local v = tonumber(redis.call('HGET', KEYS[1], ARGV[3])) - tonumber(ARGV[2]) + tonumber(ARGV[5])
  if v < 0 then v = 0 end
  redis.call('HSET', KEYS[1], ARGV[3], string.format('%d', v))
end

if ARGV[5] ~= '0' then
  redis.call('HINCRBY', KEYS[4], 'tokens', ARGV[5])
  redis.call('HINCRBY', KEYS[5], 'tokens', ARGV[5])
end
if tonumber(ARGV[6]) > 0 then
  redis.call('HINCRBYFLOAT', KEYS[4], 'cost', ARGV[6])
  redis.call('HINCRBYFLOAT', KEYS[5], 'cost', ARGV[6])
end
if ARGV[5] ~= '0' or tonumber(ARGV[6]) > 0 then
  redis.call('PEXPIRE', KEYS[4], ARGV[7])
  redis.call('PEXPIRE', KEYS[5], ARGV[8])
end
return 1
