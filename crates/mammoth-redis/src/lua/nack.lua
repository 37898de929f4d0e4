-- nack: ARGV[6..11] = kind, entry id, delivery count, action ('retry'/'dead'), delay ms,
-- error; ARGV[12] = the delivery's attempt. Returns {'stale'}, {'retry'} or {'dead', id}.
local ctx = group_context()
local kind, id, count = ARGV[6], ARGV[7], tonumber(ARGV[8])
local action, delay, err, attempt = ARGV[9], tonumber(ARGV[10]), ARGV[11], ARGV[12]
if not owned(ctx, kind, id, count) then return { 'stale' } end
local e = redis.call('XRANGE', ctx.stream[kind], id, id)
if #e == 0 then
  finish_entry(ctx, kind, id)
  return { 'stale' }
end
local m = tomap(e[1][2])
local now_ms, now_us = now_parts()
local first = m.ff or redis.call('HGET', ctx.failed, kind .. id) or now_us
if action == 'dead' then
  return { 'dead', bury(ctx, kind, id, m, attempt, err, first, now_us) }
end
local rec = message_fields(m)
for _, v in ipairs({ 'n', attempt, 'ff', first, 'le', err }) do rec[#rec + 1] = v end
local rid = kind .. id
redis.call('HSET', ctx.wait, rid, cmsgpack.pack(rec))
-- One millisecond more: the clock's sub-millisecond part must not make a retry early.
redis.call('ZADD', ctx.delayed, string.format('%.0f', now_ms + delay + 1), rid)
finish_entry(ctx, kind, id)
return { 'retry' }
