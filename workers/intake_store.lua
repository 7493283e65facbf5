-- KEYS[1] inbox list, KEYS[2] drain flag, KEYS[3..n] seen-keys, one per event
-- ARGV[1] dedup window (s), ARGV[2] drain flag lifetime (s), ARGV[3..n] event JSON
local stored = 0
for i = 3, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('LPUSH', KEYS[1], ARGV[i])
    stored = stored + 1
  end
end
-- Ask for a drain job whenever work is waiting and none was asked for lately, duplicates
-- included: a delivery retried after a lost enqueue must still get its events drained.
local schedule = 0
if (stored > 0 or redis.call('LLEN', KEYS[1]) > 0)
    and redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  schedule = 1
end
return {stored, schedule}
