-- extend: ARGV[6..9] = kind, entry id, delivery count, idle ms to set. Returns 1 or 0.
local ctx = group_context()
local kind, id, count = ARGV[6], ARGV[7], tonumber(ARGV[8])
if not owned(ctx, kind, id, count) then return 0 end
redis.call('XCLAIM', ctx.stream[kind], ctx.group, ctx.me, 0, id, 'IDLE', ARGV[9], 'JUSTID')
return 1
