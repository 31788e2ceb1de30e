# frozen_string_literal: true

# Enqueue side of the Sidekiq benchmark; prints one JSON line.
#
#   ruby enqueue.rb one N            # N x NoopWorker.perform_async, timed, per-call p50/p99
#   ruby enqueue.rb bulk N           # Sidekiq::Client.push_bulk, 10,000 jobs a call, timed
#   ruby enqueue.rb paced N RATE W   # W warm-up jobs (ts=0), wait for them in $BENCH_LAT_FILE,
#                                    # then N jobs carrying Time.now.to_f at RATE per second
require "json"
require_relative "worker"

Sidekiq.configure_client do |config|
  config.redis = { url: ENV.fetch("REDIS_URL"), size: 1 }
end

def clock
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def percentile(samples, q)
  data = samples.sort
  pos = (data.size - 1) * q / 100.0
  lo = pos.floor
  hi = [lo + 1, data.size - 1].min
  data[lo] + (data[hi] - data[lo]) * (pos - lo)
end

def bulk(n)
  done = 0
  while done < n
    k = [10_000, n - done].min
    Sidekiq::Client.push_bulk("class" => NoopWorker, "args" => Array.new(k) { [] })
    done += k
  end
end

def lat_lines
  File.exist?(ENV["BENCH_LAT_FILE"]) ? File.read(ENV["BENCH_LAT_FILE"]).count("\n") : 0
end

mode = ARGV.fetch(0)
n = Integer(ARGV.fetch(1))
out = { "sidekiq" => Sidekiq::VERSION, "ruby" => RUBY_VERSION }

case mode
when "one"
  [50, n].min.times { NoopWorker.perform_async }
  per = []
  start = clock
  n.times do
    t = clock
    NoopWorker.perform_async
    per << clock - t
  end
  out["seconds"] = clock - start
  out["p50_ms"] = percentile(per, 50) * 1000
  out["p99_ms"] = percentile(per, 99) * 1000
when "bulk"
  bulk(10)
  start = clock
  bulk(n)
  out["seconds"] = clock - start
when "fill"
  bulk(n)
when "paced"
  rate = Float(ARGV.fetch(2))
  warm = Integer(ARGV.fetch(3))
  warm.times { NoopWorker.perform_async(0.0) }
  deadline = clock + 120
  sleep 0.01 while lat_lines < warm && clock < deadline
  raise "warm-up jobs did not run" if lat_lines < warm

  sleep 0.5
  start = clock
  n.times do |i|
    delay = start + i / rate - clock
    sleep delay if delay.positive?
    NoopWorker.perform_async(Time.now.to_f)
  end
  out["seconds"] = clock - start
else
  raise "unknown mode #{mode}"
end
puts JSON.generate(out)
