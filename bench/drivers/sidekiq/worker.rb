# frozen_string_literal: true

# The Sidekiq no-op worker for the conveyor benchmark. Redis comes from $REDIS_URL (Sidekiq's
# own convention). Like the Python tasks (bench/drivers/sink.py): with no argument it counts
# runs in this process and creates $BENCH_DONE_FILE at $BENCH_DONE_N; with a timestamp it
# appends (now - ts) in seconds to $BENCH_LAT_FILE.
require "sidekiq"

class NoopWorker
  include Sidekiq::Worker

  DONE_N = ENV.fetch("BENCH_DONE_N", "0").to_i
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
