-- ack: ARGV[6..] = (kind, entry id, message id, key tag '-' or '+key') per delivery.
-- Unkeyed entries of the topic's stream (the bulk) are acknowledged with one XACK; entries of
-- the group's own stream are deleted too, and a keyed entry releases its key.
local ctx = group_context()
local plain, refs = {}, {}
for i = 6, #ARGV, 4 do
  local kind, id, msgid, tag = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if kind == 'm' and tag == '-' then
    plain[#plain + 1] = id
    refs[#refs + 1] = 'm' .. id
  elseif finish_entry(ctx, kind, id) == 1 and tag ~= '-' then
    release(ctx, msgid, string.sub(tag, 2))
  end
end
if #plain > 0 then
  redis.call('XACK', ctx.stream.m, ctx.group, unpack(plain))
  if redis.call('EXISTS', ctx.failed) == 1 then redis.call('HDEL', ctx.failed, unpack(refs)) end
end
return 1
