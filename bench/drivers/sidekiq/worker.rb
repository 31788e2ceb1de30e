# frozen_string_literal: true

# The Sidekiq no-op worker for the conveyor benchmark. Redis comes from $REDIS_URL (Sidekiq's
# own convention). Like the Python tasks (bench/drivers/sink.py): with no argument it counts
# runs in this process and creates $BENCH_DONE_FILE at $BENCH_DONE_N; with a timestamp it
# appends (now - ts) in seconds to $BENCH_LAT_FILE.
require "sidekiq"

# Quiet, as Sidekiq's own load test (bin/sidekiqload) runs it: at the default INFO level the job
# logger writes a "start" and a "done" line for every job, about 200 us of Ruby each.
Sidekiq.logger.level = Logger::ERROR
# Debian pairs Sidekiq 6.4 with redis-rb 4.8, which warns (with a caller lookup) on every BRPOP
# fetch and every push about calls Sidekiq 6.4 still makes; Sidekiq's own runs do not pay that.
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

class NoopWorker
  include Sidekiq::Worker

  DONE_N = ENV.fetch("BENCH_DONE_N", "0").to_i
  STEADY_FROM = 1_000 # as bench/drivers/sink.py: the steady rate is timed from this run on
  DONE_FILE = ENV.fetch("BENCH_DONE_FILE", "")
  LAT_FILE = ENV.fetch("BENCH_LAT_FILE", "")
  LOCK = Mutex.new
  @count = 0
  @lat = nil

  class << self
    attr_accessor :count, :lat
  end

  def perform(ts = nil)
    if ts.nil?
      return unless DONE_N.positive?

      n = LOCK.synchronize { self.class.count += 1 }
      File.write("#{DONE_FILE}.first", "") if n == 1
      File.write("#{DONE_FILE}.steady", "") if n == STEADY_FROM
      File.write(DONE_FILE, "") if n == DONE_N
    else
      elapsed = Time.now.to_f - ts
      LOCK.synchronize do
        if self.class.lat.nil?
          self.class.lat = File.open(LAT_FILE, "a")
          self.class.lat.sync = true
        end
        self.class.lat.write(format("%.9f\n", elapsed))
      end
    end
  end
end
