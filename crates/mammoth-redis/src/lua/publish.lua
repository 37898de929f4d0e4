-- publish: ARGV[1..9] = stream, sequence counter key, dedup key prefix, dedup window ms,
-- relay checkpoint key ('' for none), position, topic registry key, topic, published-at
-- micros; then (id, key tag '-' or '+key', payload, headers, position) per message (position
-- '0' outside a relay). Returns {base, i1, seq1, i2, seq2, ...}: message i (1-based) got
-- sequence base + i unless it is listed as a duplicate (i, sequence of the first copy; 0
-- for a message skipped because the relay checkpoint already covers it).
-- The batch takes its sequence numbers with one INCRBY; a duplicate leaves a hole (sequence
-- numbers order messages, they need not be dense).
-- De-duplication: ids live in one hash per time slot of one window (`<prefix><slot>`, id ->
-- sequence). A publish checks the current and the previous slot, so an id is remembered for
-- at least one window (at most two). Checks and inserts are one HMGET/HSET per slot per
-- batch, so a message costs one call (its XADD). The slot before the previous is unlinked
-- (freed in the background); the expiry is a fallback for topics that stop publishing.
local stream, counter, dedup, window = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local at = ARGV[9]
local first = 10
local count = (#ARGV - first + 1) / 5
local chunk = 2000

local done = nil
if ARGV[5] ~= '' then done = tonumber(redis.call('GET', ARGV[5]) or '0') end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot = math.floor(now / window)
local cur, prev = dedup .. slot, dedup .. (slot - 1)

-- HMGET of the batch's ids in one slot, in chunks (Lua's unpack has a stack limit).
local function lookup(key)
  local found = {}
  if redis.call('EXISTS', key) == 0 then return found end
  local ids = {}
  for i = first, #ARGV, 5 do
    ids[#ids + 1] = ARGV[i]
    if #ids == chunk or i + 5 > #ARGV then
      local got = redis.call('HMGET', key, unpack(ids))
      for j = 1, #ids do
        if got[j] then found[ids[j]] = tonumber(got[j]) end
      end
      ids = {}
    end
  end
  return found
end

redis.call('SADD', ARGV[7], ARGV[8])
local base = redis.call('INCRBY', counter, count) - count
local seen_cur, seen_prev = lookup(cur), lookup(prev)
local out = { base }
local new = {}
local n = 0
for i = first, #ARGV, 5 do
  n = n + 1
  local id, tag = ARGV[i], ARGV[i + 1]
  local earlier = seen_cur[id] or seen_prev[id]
  if done and tonumber(ARGV[i + 4]) <= done then
    out[#out + 1] = n
    out[#out + 1] = earlier or 0
  elseif earlier then
    out[#out + 1] = n
    out[#out + 1] = earlier
  else
    local seq = base + n
    seen_cur[id] = seq
    new[#new + 1] = id
    new[#new + 1] = seq
    if tag == '-' then
      redis.call('XADD', stream, '*', 'id', id, 'p', ARGV[i + 2], 'h', ARGV[i + 3],
                 'at', at, 's', seq)
    else
      redis.call('XADD', stream, '*', 'id', id, 'k', string.sub(tag, 2), 'p', ARGV[i + 2],
                 'h', ARGV[i + 3], 'at', at, 's', seq)
    end
  end
end
for i = 1, #new, chunk do
  redis.call('HSET', cur, unpack(new, i, math.min(i + chunk - 1, #new)))
end
if #new > 0 then
  redis.call('PEXPIREAT', cur, (slot + 3) * window)
  redis.call('UNLINK', dedup .. (slot - 2))
end
if done and tonumber(ARGV[6]) > done then redis.call('SET', ARGV[5], ARGV[6]) end
return out
