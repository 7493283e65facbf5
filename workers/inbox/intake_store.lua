-- KEYS[1] inbox list, KEYS[2] drain flag, KEYS[3 .. 2+b] seen buckets (current first),
-- KEYS[3+b .. 2+b+n] the per-event seen keys of older versions, one per event
-- ARGV[1] seconds a bucket lives, ARGV[2] drain flag lifetime (s), ARGV[3] b,
-- ARGV[4 .. 3+n] event ids (12 bytes each), ARGV[4+n .. 3+2n] event JSON
local buckets = tonumber(ARGV[3])
local n = (#ARGV - 3) / 2
local stored = 0
for i = 1, n do
  local id = ARGV[3 + i]
  local seen = redis.call('EXISTS', KEYS[2 + buckets + i]) == 1
  local b = 1
  while not seen and b <= buckets do
    seen = redis.call('SISMEMBER', KEYS[2 + b], id) == 1
    b = b + 1
  end
  if not seen then
    redis.call('SADD', KEYS[3], id)
    redis.call('LPUSH', KEYS[1], ARGV[3 + n + i])
    stored = stored + 1
  end
end
if stored > 0 then redis.call('EXPIRE', KEYS[3], ARGV[1]) end
-- Ask for a drain job whenever work is waiting and none was asked for lately, duplicates
-- included: a delivery retried after a lost enqueue must still get its events drained.
local schedule = 0
if (stored > 0 or redis.call('LLEN', KEYS[1]) > 0)
    and redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  schedule = 1
end
return {stored, schedule}
