-- Admission, atomic: reap expired leases, check every limit, record the request only if all pass.
-- KEYS: 1 rpm (hash second -> requests), 2 tpm (hash second -> tokens), 3 live (zset "id|tokens" -> lease expiry ms),
--       4 reserved (string: tokens held by live members), 5 day (hash tokens, cost), 6 month (hash tokens, cost)
-- ARGV: 1 now_ms, 2 now_sec, 3 oldest_sec (window is oldest..now, 61 buckets), 4 member, 5 tokens to reserve,
--       6 lease expiry ms, 7 live/reserved TTL ms, 8 window TTL ms,
--       9 rpm, 10 tpm, 11 concurrency, 12 tokens/day, 13 tokens/month, 14 cost/day, 15 cost/month ('' = no limit)
-- Returns {'ok'} or {reason, rpm fields, tpm fields, live, reserved, day tokens, day cost, month tokens, month cost}.
local oldest = tonumber(ARGV[3])
local ask = tonumber(ARGV[5])

local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
if #expired > 0 then
  local freed = 0
  for _, m in ipairs(expired) do
    freed = freed + (tonumber(string.match(m, '|(%d+)$')) or 0)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
  if redis.call('DECRBY', KEYS[4], string.format('%d', freed)) < 0 then
    redis.call('SET', KEYS[4], '0', 'KEEPTTL')
  end
end

local function window(key)
  local flat = redis.call('HGETALL', key)
  local sum, stale = 0, {}
  for i = 1, #flat, 2 do
    if tonumber(flat[i]) < oldest then
      stale[#stale + 1] = flat[i]
    else
      sum = sum + tonumber(flat[i + 1])
    end
  end
  if #stale > 0 then
    redis.call('HDEL', key, unpack(stale))
  end
  return sum, flat
end

local function limit(i)
  if ARGV[i] == '' then return nil end
  return tonumber(ARGV[i])
end

local rpm_used, rpm_flat = window(KEYS[1])
local tpm_used, tpm_flat = window(KEYS[2])
local live = redis.call('ZCARD', KEYS[3])
local reserved_raw = redis.call('GET', KEYS[4]) or '0'
local reserved = tonumber(reserved_raw)
local day = redis.call('HMGET', KEYS[5], 'tokens', 'cost')
local month = redis.call('HMGET', KEYS[6], 'tokens', 'cost')
local day_tokens, day_cost = day[1] or '0', day[2] or '0'
local month_tokens, month_cost = month[1] or '0', month[2] or '0'

local over = nil
local l = limit(9)
if l and rpm_used + 1 > l then over = 'rpm' end
l = limit(10)
if not over and l and tpm_used + ask > l then over = 'tpm' end
l = limit(11)
if not over and l and live + 1 > l then over = 'concurrency' end
l = limit(12)
if not over and l and tonumber(day_tokens) + reserved + ask > l then over = 'tokens_day' end
l = limit(13)
if not over and l and tonumber(month_tokens) + reserved + ask > l then over = 'tokens_month' end
l = limit(14)
if not over and l and tonumber(day_cost) >= l then over = 'cost_day' end
l = limit(15)
if not over and l and tonumber(month_cost) >= l then over = 'cost_month' end
if over then
  return {over, rpm_flat, tpm_flat, live, reserved_raw, day_tokens, day_cost, month_tokens, month_cost}
end

redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[4])
redis.call('INCRBY', KEYS[4], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[7])
return {'ok'}
