package com.example

import com.sun.net.httpserver.{HttpExchange, HttpHandler, HttpServer}
import java.net.InetSocketAddress

/** Answers every request with a greeting naming the language and the Scala version. */
object Main {
  def main(args: Array[String]): Unit = {
    val port = sys.env.getOrElse("PORT", "5000").toInt
    val server = HttpServer.create(new InetSocketAddress(port), 0)
    server.createContext("/", new HttpHandler {
      def handle(exchange: HttpExchange): Unit = {
        val body = s"Hello from Scala ${scala.util.Properties.versionNumberString}\n".getBytes("UTF-8")
        exchange.getResponseHeaders.set("Content-Type", "text/plain; charset=utf-8")
        exchange.sendResponseHeaders(200, body.length.toLong)
        val out = exchange.getResponseBody
        try out.write(body) finally out.close()
      }
    })
    server.start()
    println(s"listening on port $port")
  }
}
