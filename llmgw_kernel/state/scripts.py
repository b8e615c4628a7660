"""The server-side scripts of shared admission: each is one atomic step in Redis, so the
rule "committed + reserved < budget" (and the rate windows) hold across every process.

Keys (``P`` is the prefix, a hash tag: all keys live in one Cluster slot):

- ``P:seeded`` — the data directories whose log spend this Redis holds, and the processes
  whose reservations it holds (``proc:<id>``) (a set);
- ``P:flights`` — reservations in flight, scored by when their lease ends (a sorted set);
- ``P:f|<request id>`` — one reservation: ``u`` nano-dollars, ``t`` tokens, ``b`` its budget
  buckets, ``w`` its rate windows (newline-separated key names);
- ``P:b|<scope>|<who>|<window>|<start>`` — a budget bucket: ``c`` committed, ``r`` reserved
  (nano-dollars), expiring a day after its window ends;
- ``P:w|<scope>|<who>`` — a rate window: ``q<second>`` admissions, ``t<second>`` settled
  tokens, ``res`` tokens reserved; seconds older than the last 60 are deleted as they are read.

Numbers are integers (nano-dollars, tokens), so sums do not depend on their order, as in
:mod:`llmgw_kernel.decisions.limits`, whose rules these scripts apply unchanged.
"""

from __future__ import annotations

# Give a reservation back (its process settled it, or died and its lease ended); with
# ``sec`` and ``tokens``, count the settled tokens in its rate windows.
_RELEASE = """
local function release(flights, fk, sec, tokens)
  local f = redis.call('HMGET', fk, 'u', 't', 'b', 'w')
  redis.call('ZREM', flights, fk)
  if not f[1] then return 0 end
  redis.call('DEL', fk)
  local u, t = tonumber(f[1]), tonumber(f[2])
  for k in string.gmatch(f[3], '[^\\n]+') do
    if redis.call('HINCRBY', k, 'r', 0 - u) <= 0 then redis.call('HDEL', k, 'r') end  -- not -u: -0 is no integer
  end
  for k in string.gmatch(f[4], '[^\\n]+') do
    if redis.call('HINCRBY', k, 'res', 0 - t) < 0 then redis.call('HSET', k, 'res', 0) end
    if sec and tokens > 0 then redis.call('HINCRBY', k, 't' .. sec, tokens); redis.call('EXPIRE', k, 120) end
  end
  return 1
end
"""

#: KEYS: seeded, flights, the flight, nb budget buckets, nr rate windows.
#: ARGV: this process's member, at, worst nano-dollars, worst tokens, lease end, nb, nr,
#:       then (limit nano-dollars, hard 1|0, expire-at) per budget, then (rpm, tpm; -1: none) per rate.
#: Returns {'unseeded'} | {1, soft budget indexes (comma-separated), committed of each budget...}
#:       | {0, 'r', i, column, retry ms} | {0, 'b', i, spent, held}.
ADMIT = (
    _RELEASE
    + """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'unseeded'} end
local at, worst, wtok = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nb, nr = tonumber(ARGV[6]), tonumber(ARGV[7])
local sec = math.floor(at)
local horizon = sec - 59
for _, fk in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', at, 'LIMIT', 0, 8)) do
  release(KEYS[2], fk, nil, 0)  -- its process died: the lease ended
end
local ra = 8 + 3 * nb
for i = 1, nr do
  local key = KEYS[3 + nb + i]
  local rpm, tpm = tonumber(ARGV[ra + 2 * i - 2]), tonumber(ARGV[ra + 2 * i - 1])
  local h = redis.call('HGETALL', key)
  local q, t, res, oq, ot = 0, 0, 0, nil, nil
  for j = 1, #h, 2 do
    local f, v = h[j], tonumber(h[j + 1])
    if f == 'res' then res = v else
      local s = tonumber(string.sub(f, 2))
      if s < horizon then redis.call('HDEL', key, f)
      elseif string.sub(f, 1, 1) == 'q' then
        q = q + v
        if v > 0 and (oq == nil or s < oq) then oq = s end
      else
        t = t + v
        if v > 0 and (ot == nil or s < ot) then ot = s end
      end
    end
  end
  local function retry(s)
    if s == nil then return 1000 end
    return math.max(1, math.floor((s + 60 - at) * 1000))
  end
  if rpm >= 0 and q >= rpm then return {0, 'r', i, 1, retry(oq)} end
  if tpm >= 0 and t + res >= tpm then return {0, 'r', i, 2, retry(ot)} end
end
local soft, out = {}, {1, ''}
for i = 1, nb do
  local v = redis.call('HMGET', KEYS[3 + i], 'c', 'r')
  local c, r = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if c + r >= tonumber(ARGV[5 + 3 * i]) then
    if ARGV[6 + 3 * i] == '1' then return {0, 'b', i, tostring(c), tostring(r)} end
    soft[#soft + 1] = i
  end
  out[2 + i] = v[1] or '0'
end
out[2] = table.concat(soft, ',')
local bkeys, wkeys = {}, {}
for i = 1, nb do
  local k = KEYS[3 + i]
  redis.call('HINCRBY', k, 'r', worst)
  redis.call('EXPIREAT', k, ARGV[7 + 3 * i])
  bkeys[i] = k
end
for i = 1, nr do
  local k = KEYS[3 + nb + i]
  redis.call('HINCRBY', k, 'q' .. sec, 1)
  redis.call('HINCRBY', k, 'res', wtok)
  redis.call('EXPIRE', k, 120)
  wkeys[i] = k
end
redis.call('HSET', KEYS[3], 'u', worst, 't', wtok, 'b', table.concat(bkeys, '\\n'), 'w', table.concat(wkeys, '\\n'))
-- the flight outlives its lease until the buckets it holds money in expire: if it vanished first,
-- reaping it (on a later admission, however late) could no longer give the reservation back
local keep = math.floor(tonumber(ARGV[5])) + 60
for i = 1, nb do keep = math.max(keep, tonumber(ARGV[7 + 3 * i])) end
redis.call('EXPIREAT', KEYS[3], keep)
redis.call('ZADD', KEYS[2], ARGV[5], KEYS[3])
return out
"""
)

#: KEYS: seeded, flights, the flight (may be gone), then the nc budget buckets the cost commits to.
#: ARGV: this process's member, at, cost nano-dollars, tokens, nc, then an expire-at per bucket.
#: Returns 1 when this Redis knows this process, 0 when it lost its data and must be re-seeded.
SETTLE = (
    _RELEASE
    + """
local sec = math.floor(tonumber(ARGV[2]))
release(KEYS[2], KEYS[3], sec, tonumber(ARGV[4]))
local cost, nc = tonumber(ARGV[3]), tonumber(ARGV[5])
if cost ~= 0 then
  for i = 1, nc do
    redis.call('HINCRBY', KEYS[3 + i], 'c', cost)
    redis.call('EXPIREAT', KEYS[3 + i], ARGV[5 + i])
  end
end
return redis.call('SISMEMBER', KEYS[1], ARGV[1])
"""
)

#: KEYS: seeded. ARGV: dir, this process's member, n, then (key, field, amount, expire-at) n times.
#: Adds one data directory's log to an empty (or restarted) Redis, once, and marks the process
#: known: 1 if the log was added, 0 if it was there already.
SEED = """
redis.call('SADD', KEYS[1], ARGV[2])
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local k = ARGV[4 + 4 * i]
  redis.call('HINCRBY', k, ARGV[5 + 4 * i], ARGV[6 + 4 * i])
  redis.call('EXPIREAT', k, ARGV[7 + 4 * i])
end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

#: KEYS: this Redis's seeded directories, then the budget buckets a reload adds.
#: ARGV: the field marking a bucket seeded by this directory (``s:<dir>``), the directory, then
#: per bucket: nano-dollars, expire-at. Adds the log's spend to each bucket this directory has
#: not seeded yet (once per directory and bucket, whichever replica runs it first); -1 when the
#: directory is not seeded at all (the next admission's seeding brings everything).
SEED_ADDED = """
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then return -1 end
local added = 0
for i = 2, #KEYS do
  local k = KEYS[i]
  if redis.call('HSETNX', k, ARGV[1], 1) == 1 then
    redis.call('HINCRBY', k, 'c', ARGV[2 * i - 1])
    added = added + 1
  end
  redis.call('EXPIREAT', k, ARGV[2 * i])
end
return added
"""

#: KEYS: the flight, then the nb budget buckets its reservation moves to.
#: ARGV: the flight's expire-at, then an expire-at per bucket.
#: Moves a reservation of this process to other budget buckets (a time-zone change: the windows of
#: its admission in the new zone): 1, or 0 when the flight is gone (settled, or reaped).
MOVE = """
local f = redis.call('HMGET', KEYS[1], 'u', 'b')
if not f[1] then return 0 end
local u = tonumber(f[1])
for k in string.gmatch(f[2], '[^\\n]+') do
  if redis.call('HINCRBY', k, 'r', 0 - u) <= 0 then redis.call('HDEL', k, 'r') end
end
local bkeys = {}
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'r', u)
  redis.call('EXPIREAT', KEYS[i], ARGV[i])
  bkeys[i - 1] = KEYS[i]
end
redis.call('HSET', KEYS[1], 'b', table.concat(bkeys, '\\n'))
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return 1
"""

#: KEYS: flights, the flight, nb budget buckets, nr rate windows.
#: ARGV: worst nano-dollars, worst tokens, lease end, nb, nr, an expire-at per budget bucket.
#: Puts back a reservation of this process that a Redis which lost its data no longer holds.
RESTORE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local worst, wtok, nb, nr = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
local bkeys, wkeys = {}, {}
for i = 1, nb do
  redis.call('HINCRBY', KEYS[2 + i], 'r', worst)
  redis.call('EXPIREAT', KEYS[2 + i], ARGV[5 + i])
  bkeys[i] = KEYS[2 + i]
end
for i = 1, nr do
  redis.call('HINCRBY', KEYS[2 + nb + i], 'res', wtok)
  redis.call('EXPIRE', KEYS[2 + nb + i], 120)
  wkeys[i] = KEYS[2 + nb + i]
end
redis.call('HSET', KEYS[2], 'u', worst, 't', wtok, 'b', table.concat(bkeys, '\\n'), 'w', table.concat(wkeys, '\\n'))
local keep = math.floor(tonumber(ARGV[3])) + 60  -- as in ADMIT: never gone before its buckets
for i = 1, nb do keep = math.max(keep, tonumber(ARGV[5 + i])) end
redis.call('EXPIREAT', KEYS[2], keep)
redis.call('ZADD', KEYS[1], ARGV[3], KEYS[2])
return 1
"""

#: KEYS: one budget bucket. Returns {committed, reserved} nano-dollars as strings.
SPEND = """
local v = redis.call('HMGET', KEYS[1], 'c', 'r')
return {tostring(tonumber(v[1]) or 0), tostring(tonumber(v[2]) or 0)}
"""
