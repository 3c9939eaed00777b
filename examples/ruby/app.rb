# Hoist example: a tiny HTTP server on plain Ruby sockets (webrick isn't part of
# Ruby 3.x), run through `bundle exec` so the Bundler setup is exercised.
require "bundler/setup"
require "socket"

port = Integer(ENV.fetch("PORT", "5000"))
server = TCPServer.new("0.0.0.0", port)
gems = Bundler.load.specs.map(&:name).reject { |n| n == "bundler" }
body = "Hello from Ruby #{RUBY_VERSION}, bundler ok (Bundler #{Bundler::VERSION}, #{gems.size} gems)\n"
$stdout.sync = true
puts "listening on #{port}"

loop do
  Thread.new(server.accept) do |client|
    # Read the request head; the body (if any) is ignored.
    while (line = client.gets) && line != "\r\n"; end
    client.write "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" \
                 "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n#{body}"
  rescue StandardError => e
    warn "request failed: #{e.message}"
  ensure
    client.close
  end
end
