-- publish: ARGV[1..6] = stream, sequence counter key, dedup key prefix, dedup window ms,
-- relay checkpoint key ('' for none), position, topic registry key, topic; then (id, key tag '-' or '+key', payload,
-- headers, published-at micros) per message. Returns {sequence, duplicate 0/1} per message.
local stream, counter, dedup, window = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}
redis.call('SADD', ARGV[7], ARGV[8])
for i = 9, #ARGV, 5 do
  local id, tag = ARGV[i], ARGV[i + 1]
  local seen = redis.call('GET', dedup .. id)
  if seen then
    out[#out + 1] = { tonumber(seen), 1 }
  else
    local seq = redis.call('INCR', counter)
    redis.call('SET', dedup .. id, seq, 'PX', window)
    if tag == '-' then
      redis.call('XADD', stream, '*', 'id', id, 'p', ARGV[i + 2], 'h', ARGV[i + 3],
                 'at', ARGV[i + 4], 's', seq)
    else
      redis.call('XADD', stream, '*', 'id', id, 'k', string.sub(tag, 2), 'p', ARGV[i + 2],
                 'h', ARGV[i + 3], 'at', ARGV[i + 4], 's', seq)
    end
    out[#out + 1] = { seq, 0 }
  end
end
if ARGV[5] ~= '' then
  local current = tonumber(redis.call('GET', ARGV[5]) or '0')
  if tonumber(ARGV[6]) > current then redis.call('SET', ARGV[5], ARGV[6]) end
end
return out
