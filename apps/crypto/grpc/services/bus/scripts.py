"""Multi-key steps of the bus as Lua, so each runs atomically inside Redis.

Owner values are "replica|epoch"; the epoch grows on every claim (fencing).
"""

from __future__ import annotations

# KEYS[1] owner, KEYS[2] epoch counter, KEYS[3] held list, KEYS[4] recent marker
# ARGV[1] replica id, ARGV[2] owner TTL ms, ARGV[3] epoch counter TTL ms
# Returns {epoch, previous owner or "", held command envelopes...}. Held commands are taken
# only inside the grace window (recent marker alive); later ones stay for their callers to withdraw.
CLAIM = """
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local previous = redis.call('GET', KEYS[1]) or ''
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
local held = {}
if redis.call('EXISTS', KEYS[4]) == 1 then
  held = redis.call('LRANGE', KEYS[3], 0, -1)
  redis.call('DEL', KEYS[3], KEYS[4])
end
local result = {epoch, previous}
for _, item in ipairs(held) do table.insert(result, item) end
return result
"""

# KEYS[1] owner, KEYS[2] epoch counter
# ARGV[1] "replica|epoch" this replica holds, ARGV[2] owner TTL ms, ARGV[3] replica id, ARGV[4] epoch TTL ms
# Returns 1 refreshed, 0 taken by another owner, or a new epoch (>1 as {epoch}) when the claim was gone.
REFRESH = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[1], ARGV[3] .. '|' .. epoch, 'PX', ARGV[2])
return {epoch}
"""

# KEYS[1] owner, KEYS[2] recent marker, KEYS[3] presence
# ARGV[1] "replica|epoch" expected, ARGV[2] grace ms (0: no marker)
# Compare-and-delete: never removes a newer owner's claim. Returns 1 released, 0 not ours.
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return 1
"""

# KEYS[1] owner, KEYS[2] held list, KEYS[3] recent marker
# ARGV[1] command envelope, ARGV[2] held TTL ms (outlives the window so callers can withdraw)
# Returns "owner:<replica|epoch>" (route there instead), "held", or "offline".
HOLD = """
local owner = redis.call('GET', KEYS[1])
if owner then return 'owner:' .. owner end
if redis.call('EXISTS', KEYS[3]) == 0 then return 'offline' end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 'held'
"""

# KEYS[1] held list   ARGV[1] command envelope
# Returns 1 when the caller withdrew it (it will never be delivered), 0 when a new owner took it.
WITHDRAW = """
return redis.call('LREM', KEYS[1], 1, ARGV[1])
"""

# KEYS[1] owner, KEYS[2] ack wait
# ARGV[1] this replica id, ARGV[2] channel name prefix, ARGV[3] ack wait TTL ms (0: nobody waits),
# ARGV[4] ack wait value ("replica\nclient_id"), ARGV[5] command envelope
# One round trip for a command: look up the owner, note who waits for the ack, publish to the
# owner's channel. Returns {owner or "", receivers}; receivers is -1 when nothing was published
# (no owner, or this replica owns the client).
ROUTE = """
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3]) end
local owner = redis.call('GET', KEYS[1])
if not owner then return {'', -1} end
local replica = string.match(owner, '^(.*)|%d+$')
if not replica or replica == ARGV[1] then return {owner, -1} end
return {owner, redis.call('PUBLISH', ARGV[2] .. replica, ARGV[5])}
"""

# KEYS[1] ack result marker, KEYS[2] ack wait ("replica\nclient_id")
# ARGV[1] marker TTL ms, ARGV[2] client_id that sent the ack, ARGV[3] replica the owner knows waits ("" if
# none), ARGV[4] channel name prefix, ARGV[5] ack envelope
# Forwards the ack to the replica waiting for it, once, in one round trip. Only a command that was sent to
# this client leaves anything in Redis (a 1-byte marker that spots duplicates), so a bot cannot make Redis
# store what it likes. Returns {waiting replica, receivers}; {"", 0} when nobody waits (the owner records
# the ack itself); "\n" when the command belongs to another client; false for a duplicate.
SETTLE_ACK = """
local waiter = redis.call('GET', KEYS[2])
local replica = ''
if waiter then
  local sep = string.find(waiter, '\\n', 1, true)
  if string.sub(waiter, sep + 1) ~= ARGV[2] then return '\\n' end
  replica = string.sub(waiter, 1, sep - 1)
end
if ARGV[3] ~= '' then replica = ARGV[3] end
if replica == '' then return {'', 0} end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return false end
redis.call('DEL', KEYS[2])
return {replica, redis.call('PUBLISH', ARGV[4] .. replica, ARGV[5])}
"""

# KEYS[1] owner, KEYS[2] recent marker, KEYS[3] presence
# ARGV[1] "replica|epoch" seen stale (its replica no longer listens), ARGV[2] grace ms
# The client was connected a moment ago, so it enters the grace window. Returns 1 when cleaned.
CLEAN_STALE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
return 1
"""

