-- publish: ARGV[1..8] = stream, sequence counter key, dedup key prefix, dedup window ms,
-- relay checkpoint key ('' for none), position, topic registry key, topic; then (id, key tag
-- '-' or '+key', payload, headers, published-at micros) per message. Returns {sequence,
-- duplicate 0/1} per message.
-- The batch takes its sequence numbers with one INCRBY; a duplicate leaves a hole (sequence
-- numbers order messages, they need not be dense) and answers the first copy's number.
local stream, counter, dedup, window = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('SADD', ARGV[7], ARGV[8])
local count = (#ARGV - 8) / 5
local seq = redis.call('INCRBY', counter, count) - count
local out = {}
for i = 9, #ARGV, 5 do
  seq = seq + 1
  local id, tag = ARGV[i], ARGV[i + 1]
  if not redis.call('SET', dedup .. id, seq, 'NX', 'PX', window) then
    out[#out + 1] = { tonumber(redis.call('GET', dedup .. id)), 1 }
  else
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
