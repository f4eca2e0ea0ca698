# csaudit's remote probe agent for targets without a usable python3: bash's /dev/tcp under coreutils
# `timeout`, one short-lived bash per probe, $2 at a time. It connects, sends the probe kind's request
# bytes (made by csaudit; for TLS a ClientHello), and returns what the server sent back, at most
# CAP bytes, and how the talk ended; csaudit classifies it as it does every engine's facts. It has no
# TLS library (a certificate is not read) and leaves UDP to csaudit to report as not probed. Never nc:
# system VMs and hosts do not all have it. Sent by csaudit as `bash -c "$B" csaudit <timeout> <concurrency>`;
# nothing is written on the target. Output lines as documented in probe.py, plus:
#   csaudit-raw <index> <ending> <base64 of what the server sent|->   (a TLS server's first bytes)
# shellcheck shell=bash
t=$1
c=$2
CAP=2048  # one output line stays below the pipe's atomic write size, so concurrent probes never mix lines
echo "csaudit-remote 2 bash"
talks=yes  # a talk needs coreutils' cat, base64 and wc besides timeout; without them, connects only
for tool in cat base64 wc; do command -v "$tool" >/dev/null 2>&1 || talks=; done

# The talk, on a connection of its own once the connect phase found the port open (as the local engine
# does): $0 address, $1 port, $2 index, $3 kind, $4 request (base64 or -), $5 timeout, $6 CAP.
# shellcheck disable=SC2016  # the child's own positional parameters
TALK='
exec 3<>"/dev/tcp/$0/$1" || exit 90
set -o pipefail
ending=
if [ "$4" != - ]; then printf %s "$4" | base64 -d >&3 2>/dev/null || ending=reset; fi
data=
if [ -z "$ending" ]; then
  # cat writes as it reads, so what came before a timeout survives it (head buffers, but is never killed)
  data=$(timeout "$5" cat <&3 2>/dev/null | head -c "$6" | base64 -w0)
  case $? in
    0) ending=closed ;;
    124) ending=timeout ;;
    141) ending=full ;;  # cat got SIGPIPE: head had read CAP bytes
    *) ending=reset ;;
  esac
  [ "$(printf %s "$data" | base64 -d | wc -c)" -ge "$6" ] && ending=full
fi
if [ "$3" = tls ]; then echo "csaudit-raw $2 $ending ${data:--}"; else echo "csaudit-stream $2 $ending ${data:--} -"; fi
'

probe() {  # index address port kind request
  local began ended err rc code
  began=$(date +%s%N)
  # shellcheck disable=SC2016  # $0 and $1 belong to the inner bash
  err=$(timeout "$t" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>&1 >/dev/null)
  rc=$?
  ended=$(date +%s%N)
  err=$(printf '%s' "$err" | head -n 1)
  err=${err##*: }
  if [ "$rc" = 0 ]; then code=OK
  elif [ "$rc" = 124 ]; then code=ETIMEDOUT
  else
    case "$err" in
      *refused*) code=ECONNREFUSED ;;
      *"timed out"*) code=ETIMEDOUT ;;
      *"No route to host"*) code=EHOSTUNREACH ;;
      *"Network is unreachable"*) code=ENETUNREACH ;;
      *) echo "csaudit-failure $1 $2:$3: ${err:-connect failed}"; return ;;
    esac
  fi
  echo "csaudit-connect $1 $code $(( (ended - began) / 1000000 ))"
  if [ "$code" = OK ] && [ "$4" != tcp ] && [ -z "$talks" ]; then
    echo "csaudit-unchecked $1 bash connects only here: no cat, base64 or wc"
  elif [ "$code" = OK ] && [ "$4" != tcp ]; then
    timeout "$((2 * ${t%.*} + 2))" bash -c "$TALK" "$2" "$3" "$1" "$4" "$5" "$t" "$CAP" 2>/dev/null
  fi
}

running=0
while read -r index address port proto kind request; do
  [ -n "$port" ] || continue
  [ "${proto:-tcp}" = tcp ] || continue  # UDP needs python3: csaudit reports it not probed
  probe "$index" "$address" "$port" "${kind:-tcp}" "${request:--}" &
  running=$((running + 1))
  if [ "$running" -ge "$c" ]; then wait; running=0; fi
done
wait
