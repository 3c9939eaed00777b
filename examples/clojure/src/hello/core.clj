(ns hello.core
  (:import (com.sun.net.httpserver HttpServer HttpHandler HttpExchange)
           (java.net InetSocketAddress))
  (:gen-class))

(defn- respond [^HttpExchange exchange]
  (let [body (.getBytes (str "Hello from Clojure " (clojure-version) "\n") "UTF-8")]
    (.set (.getResponseHeaders exchange) "Content-Type" "text/plain; charset=utf-8")
    (.sendResponseHeaders exchange 200 (alength body))
    (with-open [out (.getResponseBody exchange)]
      (.write out body))))

(defn -main [& _args]
  (let [port (Integer/parseInt (or (System/getenv "PORT") "5000"))
        server (HttpServer/create (InetSocketAddress. port) 0)]
    (.createContext server "/" (reify HttpHandler (handle [_ exchange] (respond exchange))))
    (.start server)
    (println "listening on port" port)))
