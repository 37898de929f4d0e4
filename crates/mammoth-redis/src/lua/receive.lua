-- receive: ARGV[6..10] = max, min idle ms, max attempts, ordered ('1'/'0'), expiry error.
-- Returns deliveries {kind, entry id, delivery count, attempt, fields}.
local ctx = group_context()
local max, idle, max_attempts = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local ordered, expiry_error = ARGV[9] == '1', ARGV[10]
local now_ms, now_us = now_parts()
local out = {}

-- Retries that came due join the group's own stream.
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', ctx.delayed, '-inf', now_ms, 'LIMIT', 0, 512)) do
  local rec = redis.call('HGET', ctx.wait, rid)
  if rec then redis.call('XADD', ctx.retry, '*', unpack(cmsgpack.unpack(rec))) end
  redis.call('ZREM', ctx.delayed, rid)
  redis.call('HDEL', ctx.wait, rid)
end

local function deliver(kind, id, count, fields, m)
  out[#out + 1] = { kind, id, count, tonumber(m.n or '0') + count, fields }
end

-- Entries whose consumer did not ack within the visibility timeout: the expiry counts as a
-- failed attempt; the last one is dead-lettered, the others are delivered again.
local function claim(kind)
  if #out >= max then return end
  local stream, cursor_key = ctx.stream[kind], ctx.pre .. 'cursor:' .. kind
  local cursor = redis.call('GET', cursor_key) or '0-0'
  local res = redis.call('XAUTOCLAIM', stream, ctx.group, ctx.me, idle, cursor, 'COUNT', max - #out)
  redis.call('SET', cursor_key, res[1])
  for _, e in ipairs(res[2]) do
    if e[2] then
      local id, m = e[1], tomap(e[2])
      local p = redis.call('XPENDING', stream, ctx.group, id, id, 1)
      local count = tonumber(p[1][4])
      local expired = tonumber(m.n or '0') + count - 1
      redis.call('HSETNX', ctx.failed, kind .. id, now_us)
      if expired >= max_attempts then
        local first = m.ff or redis.call('HGET', ctx.failed, kind .. id)
        bury(ctx, kind, id, m, expired, expiry_error, first, now_us)
      else
        deliver(kind, id, count, e[2], m)
      end
    end
  end
end

-- New entries; in an ordered group a key whose earlier message is still in flight or waiting
-- for a retry has the entry held back (in the key's list) until that message is done.
local function read(kind)
  local stream = ctx.stream[kind]
  for _ = 1, 64 do
    if #out >= max then return end
    local res = redis.call('XREADGROUP', 'GROUP', ctx.group, ctx.me, 'COUNT', max - #out,
                           'STREAMS', stream, '>')
    if not res or #res[1][2] == 0 then return end
    for _, e in ipairs(res[1][2]) do
      local id, m = e[1], tomap(e[2])
      local holder = ordered and m.k and redis.call('HGET', ctx.locks, m.k)
      if holder and holder ~= m.id then
        redis.call('RPUSH', ctx.pre .. 'held:' .. m.k, cmsgpack.pack(e[2]))
        redis.call('INCR', ctx.heldn)
        finish_entry(ctx, kind, id)
      else
        if ordered and m.k then redis.call('HSET', ctx.locks, m.k, m.id) end
        deliver(kind, id, 1, e[2], m)
      end
    end
  end
end

claim('r')
claim('m')
read('r')
read('m')
return out
